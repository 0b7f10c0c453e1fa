# SPDX-License-Identifier: Apache-2.0
# VT-d virtual command interface (issue 3): the device model and the guest driver.
target_sources(ioasid_objects PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/vtd/vtd_device.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/vtd/vtd_guest_driver.cc)
