# cmake -DINPUT=config/tactd.toml -DOUTPUT=<file> -DTEMPLATES=<path> -P installed_config.cmake
#
# Writes the tactd.toml that is installed: the shipped one with its
# `templates = "../templates"` line (right for the source tree) pointing at
# TEMPLATES instead, a path relative to the installed configuration folder.
# Fails when the line is not there, rather than install a configuration
# that cannot find its templates.

foreach(var INPUT OUTPUT TEMPLATES)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "installed_config.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${INPUT}" text)
set(line_pattern "(\n[ \t]*templates[ \t]*=[ \t]*)\"\\.\\./templates\"")
string(REGEX MATCHALL "${line_pattern}" lines "${text}")
list(LENGTH lines count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "${INPUT}: expected one line `templates = \"../templates\"` to point at the installed "
                      "templates, found ${count}; update packaging/installed_config.cmake with the new layout")
endif()
string(REGEX REPLACE "${line_pattern}" "\\1\"${TEMPLATES}\"" text "${text}")
file(WRITE "${OUTPUT}" "${text}")
