# SPDX-License-Identifier: Apache-2.0
# ioasidd broker (issue 5): the protocol codec (every malformed case, round trips of every message,
# golden byte layouts) and the frame-stream fuzzer with its seed corpus.
ioasid_add_test(broker_proto_test SOURCES src/broker/proto_test.cc)
ioasid_add_fuzzer(broker_frame_fuzz SOURCES src/broker/frame_fuzz.cc CORPUS src/broker/fuzz_corpus)
