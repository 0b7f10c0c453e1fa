# SPDX-License-Identifier: Apache-2.0
# virtio-iommu (issue 4): the wire layer (request parser, encoders, status table). The device
# model, virtqueue and guest driver add their sources here as they land.
target_sources(ioasid_objects PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/request_parser.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/virtio/status.cc)
