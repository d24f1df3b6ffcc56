# Headers, libraries, smyrf.pc and the CMake package (find_package(smyrf CONFIG)).
include(CMakePackageConfigHelpers)

install(DIRECTORY include/smyrf DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS smyrf smyrf_static EXPORT smyrfTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT smyrfTargets NAMESPACE smyrf:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/smyrf)

configure_package_config_file(cmake/smyrfConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/smyrfConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/smyrf)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/smyrfConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/smyrfConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/smyrfConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/smyrf)

# smyrf.pc finds its prefix from its own folder (${pcfiledir}), so the tree still works
# when installed with `cmake --install --prefix` elsewhere than the configured prefix.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SMYRF_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH SMYRF_PC_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" SMYRF_PC_PREFIX "\${pcfiledir}/${SMYRF_PC_PREFIX}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(SMYRF_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(SMYRF_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(smyrf.pc.in ${CMAKE_CURRENT_BINARY_DIR}/smyrf.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/smyrf.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
