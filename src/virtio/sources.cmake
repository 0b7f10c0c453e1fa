# SPDX-License-Identifier: Apache-2.0
# virtio-iommu (issue 4): the wire layer (request parser, encoders) and the device model core
# (IommuDevice, include/ioasid/virtio_iommu_device.hpp). The status codes for host errors are a
# column of the central error table (src/common/errc.cc).
target_sources(ioasid_objects PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/request_parser.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/iommu_device.cc)
# The split virtqueue, guest memory (memfd-shareable), the transport front-end and guest driver.
target_sources(ioasid_objects PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/guest_memory.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtqueue.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtio_transport.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtio_iommu_transport.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtio_iommu_guest_driver.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtio_remote.cc)
