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
# Under -fPIC an exported (IOASID_API) function counts as interposable, so the compiler neither
# inlines nor specialises calls to it, even within one translation unit; nothing in libioasid relies
# on interposition. The virtio request path makes such calls once per request (the device model's
# handle_request into IommuDevice's).
set_source_files_properties(
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/iommu_device.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtqueue.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtio_transport.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/virtio_iommu_guest_driver.cc
  PROPERTIES COMPILE_OPTIONS -fno-semantic-interposition)
