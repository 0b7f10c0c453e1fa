# SPDX-License-Identifier: Apache-2.0
# ioasidd broker (issue 5): the protocol codec (pure, no sockets). The daemon, its client library
# and ioasidctl add their sources here as they land.
target_sources(ioasid_objects PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/broker/proto.cc)
