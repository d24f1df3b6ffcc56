# Writes the .java files of DIR, one quoted path a line, to OUT (a javac @file).
file(GLOB sources "${DIR}/*.java")
list(SORT sources)
set(text "")
foreach(f IN LISTS sources)
  string(APPEND text "\"${f}\"\n")
endforeach()
file(WRITE "${OUT}" "${text}")
