# Warning flags shared by every ioasid target: -Wall -Wextra (-Werror unless IOASID_WERROR=OFF).
add_library(ioasid_warnings INTERFACE)
target_compile_options(ioasid_warnings INTERFACE -Wall -Wextra -Wshadow -Wcast-align
                       $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Wold-style-cast>
                       $<$<BOOL:${IOASID_WERROR}>:-Werror>)
# The C sources do not accept C++-only flags.
add_library(ioasid_c_warnings INTERFACE)
target_compile_options(ioasid_c_warnings INTERFACE -Wall -Wextra -Wshadow
                       $<$<BOOL:${IOASID_WERROR}>:-Werror>)
