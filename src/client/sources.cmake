# SPDX-License-Identifier: Apache-2.0
# The ioasidd client library (issue 5), part of libioasid: DaemonBackend / DaemonAdmin
# (include/ioasid/client.hpp) and their C functions (include/ioasid/client.h).
target_sources(ioasid_objects PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/client/channel.cc
                                      ${CMAKE_CURRENT_SOURCE_DIR}/client/client.cc
                                      ${CMAKE_CURRENT_SOURCE_DIR}/client/client_c.cc)
