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
# The split virtqueue (every broken-transport case), the transport front-end, the guest driver,
# the end-to-end run with VT-d beside it, the cross-process (memfd + eventfd) test, the fuzzer.
ioasid_add_test(virtio_virtqueue_test SOURCES src/virtio/virtqueue_test.cc)
ioasid_add_test(virtio_transport_test SOURCES src/virtio/virtio_transport_test.cc)
ioasid_add_test(virtio_end_to_end_test SOURCES src/virtio/virtio_end_to_end_test.cc)
ioasid_add_fuzzer(virtio_virtqueue_fuzz SOURCES src/virtio/virtqueue_fuzz.cc
                  CORPUS src/virtio/virtqueue_fuzz_corpus)
ioasid_add_test(virtio_remote_test SOURCES src/virtio/virtio_remote_test.cc)
ioasid_add_test(virtio_concurrency_test SOURCES src/virtio/virtio_concurrency_test.cc LABELS concurrency)
# The device end's fast paths (descriptor walk, request-queue drain) against a plain reference of
# the documented walk rules: same chains, same QueueFault, same guest memory.
ioasid_add_fuzzer(virtio_virtqueue_walk_fuzz SOURCES src/virtio/virtqueue_walk_fuzz.cc
                  CORPUS src/virtio/virtqueue_walk_fuzz_corpus)
