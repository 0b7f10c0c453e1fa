# SPDX-License-Identifier: Apache-2.0
# virtio-iommu (issue 4): wire layouts against the kernel uapi, the request parser (every malformed
# case, every valid request, the spec's example sequences) and the parser fuzzer; the device model
# core (IommuDevice: conformance, hot-path allocation and concurrency, request-sequence fuzzer).
# The status column of the error table is tested in src/common/errc_test.cc.
ioasid_add_test(virtio_uapi_compat_test SOURCES src/virtio/uapi_compat_test.cc)
ioasid_add_test(virtio_request_parser_test SOURCES src/virtio/request_parser_test.cc)
ioasid_add_fuzzer(virtio_request_parser_fuzz SOURCES src/virtio/request_parser_fuzz.cc
                  CORPUS src/virtio/fuzz_corpus)
ioasid_add_test(virtio_iommu_device_test SOURCES src/virtio/iommu_device_test.cc)
ioasid_add_fuzzer(virtio_device_fuzz SOURCES src/virtio/iommu_device_fuzz.cc
                  CORPUS src/virtio/device_fuzz_corpus)
ioasid_add_test(virtio_iommu_device_hotpath_test
                SOURCES src/virtio/iommu_device_hotpath_test.cc src/virtio/iommu_device_hotpath_new.cc
                LABELS concurrency)
