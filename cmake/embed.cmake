# Embed a text file into C at build time (cmake -P): a NUL-terminated char
# array SYMBOL with the file's bytes, and SYMBOL_size (without the NUL).
#   cmake -DIN=FILE -DOUT=FILE.c -DSYMBOL=name -P cmake/embed.cmake
# Used for docs/openapi.json (ingestor/trove_openapi): the daemon serves the
# document it was built with, with no path to configure.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
  "/*  Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "const char ${SYMBOL} [] = {\n    ${bytes}0x00};\n"
  "const size_t ${SYMBOL}_size = ${size};\n")
# Rewritten only when it changes: no needless rebuilds.
configure_file("${OUT}.tmp" "${OUT}" COPYONLY)
file(REMOVE "${OUT}.tmp")
