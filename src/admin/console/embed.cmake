# src/admin/console/embed.cmake - turn a file into a C array at build time,
# so the web console is compiled into libsluice_admin (no file to install,
# works offline). Run as a script:
#   cmake -DIN=console.html -DOUT=console_page.c -DNAME=sluice__console_page -P embed.cmake
# It writes
#   const char NAME[] = {...bytes..., 0};
#   const size_t NAME_len = <bytes without the NUL>;
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes a line keeps the generated file readable in a debugger.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const char ${NAME}[] = {\n    ${bytes}0x00};\n"
  "const size_t ${NAME}_len = ${len};\n")
# Only touch OUT when it changed, so an unchanged page recompiles nothing.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
