# SPDX-License-Identifier: Apache-2.0
# The systemd units (issue 5): parsed, checked against the manual, verified by systemd-analyze,
# the sysusers entry dry-run, and the daemon run with the service's ExecStart= under
# systemd-socket-activate. The systemd tools come from the Debian package systemd
# (scripts/install-deps.sh); without them those tests skip.
if(TARGET ioasidd AND TARGET ioasidctl)
  find_package(nlohmann_json REQUIRED)
  find_program(IOASID_SYSTEMD_ANALYZE systemd-analyze)
  find_program(IOASID_SYSTEMD_SOCKET_ACTIVATE systemd-socket-activate)
  find_program(IOASID_SYSTEMD_SYSUSERS systemd-sysusers)
  foreach(tool IOASID_SYSTEMD_ANALYZE IOASID_SYSTEMD_SOCKET_ACTIVATE IOASID_SYSTEMD_SYSUSERS)
    if(NOT ${tool})
      set(${tool} "")
    endif()
  endforeach()
  ioasid_add_test(systemd_units_test SOURCES dist/systemd/systemd_units_test.cc
                  LIBS nlohmann_json::nlohmann_json)
  if(TARGET systemd_units_test)
    target_compile_definitions(systemd_units_test PRIVATE
      IOASIDD_PATH="$<TARGET_FILE:ioasidd>"
      IOASIDCTL_PATH="$<TARGET_FILE:ioasidctl>"
      UNIT_BUILD_DIR="${PROJECT_BINARY_DIR}/dist/systemd"
      UNIT_SOURCE_DIR="${PROJECT_SOURCE_DIR}/dist/systemd"
      POLICY_EXAMPLE="${PROJECT_SOURCE_DIR}/dist/ioasid/policy.example.json"
      CONFIGURED_SBINDIR="${CMAKE_INSTALL_FULL_SBINDIR}"
      CONFIGURED_BINDIR="${CMAKE_INSTALL_FULL_BINDIR}"
      SYSTEMD_ANALYZE="${IOASID_SYSTEMD_ANALYZE}"
      SYSTEMD_SOCKET_ACTIVATE="${IOASID_SYSTEMD_SOCKET_ACTIVATE}"
      SYSTEMD_SYSUSERS="${IOASID_SYSTEMD_SYSUSERS}")
    add_dependencies(systemd_units_test ioasidd ioasidctl)
  endif()
endif()
