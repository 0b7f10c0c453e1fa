# SPDX-License-Identifier: Apache-2.0
# VT-d virtual command interface (issue 3): register conformance, guest driver, end to end,
# asynchronous completion (also under TSan) and the access-sequence fuzzer.
ioasid_add_test(vtd_vcmd_wire_test SOURCES src/vtd/vtd_vcmd_wire_test.cc)
ioasid_add_test(vtd_device_test SOURCES src/vtd/vtd_device_test.cc)
ioasid_add_test(vtd_guest_driver_test SOURCES src/vtd/vtd_guest_driver_test.cc)
ioasid_add_test(vtd_end_to_end_test SOURCES src/vtd/vtd_end_to_end_test.cc)
ioasid_add_test(vtd_async_test SOURCES src/vtd/vtd_async_test.cc LABELS concurrency)
ioasid_add_fuzzer(vtd_vcmd_fuzz SOURCES src/vtd/vtd_vcmd_fuzz.cc CORPUS src/vtd/fuzz_corpus)
