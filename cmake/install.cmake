# install.cmake: what `cmake --install` puts in the prefix, and how other
# projects find it:
#   lib/libclipcl.so.0 (+ links)  shared library, exporting only clipcl_* symbols
#   lib/libclipcl.a               static library
#   include/clipcl.h              the one public header
#   bin/clipcl                    the command
#   lib/pkgconfig/clipcl.pc       pkg-config (`pkg-config --static` adds the
#                                 static library's dependencies)
#   lib/cmake/clipcl/             find_package(clipcl): clipcl::clipcl (shared);
#                                 COMPONENTS static adds clipcl::clipcl_static
# Every installed file finds the others relative to itself, so the prefix can
# be chosen at install time (`cmake --install build --prefix DIR`).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(clipcl_shared PROPERTIES OUTPUT_NAME clipcl EXPORT_NAME clipcl
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
set_target_properties(clipcl PROPERTIES EXPORT_NAME clipcl_static)
# The library's internals (cc_*) stay private to it: only the API of
# include/clipcl.h is exported.
target_link_options(clipcl_shared PRIVATE -Wl,--version-script=${CMAKE_SOURCE_DIR}/cmake/clipcl.map
  -Wl,--no-undefined)
set_property(TARGET clipcl_shared APPEND PROPERTY LINK_DEPENDS ${CMAKE_SOURCE_DIR}/cmake/clipcl.map)

install(TARGETS clipcl_shared EXPORT clipclTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS clipcl EXPORT clipclStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/clipcl.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS clipcl_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(CLIPCL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/clipcl)
install(EXPORT clipclTargets NAMESPACE clipcl:: DESTINATION ${CLIPCL_CMAKE_DIR})
install(EXPORT clipclStaticTargets NAMESPACE clipcl:: DESTINATION ${CLIPCL_CMAKE_DIR})
# MPI (optional at build time) for static consumers
if(MPI_C_FOUND)
  set(CLIPCL_WITH_MPI TRUE)
  set(CLIPCL_PC_MPI "")
  foreach(l ${MPI_C_LIBRARIES})
    get_filename_component(n ${l} NAME_WE)
    string(REGEX REPLACE "^lib" "-l" n "${n}")
    string(APPEND CLIPCL_PC_MPI " ${n}")
  endforeach()
else()
  set(CLIPCL_WITH_MPI FALSE)
  set(CLIPCL_PC_MPI "")
endif()
# FAISS (optional): a static C++ library with OpenMP, BLAS and LAPACK
set(CLIPCL_PC_FAISS "")
if(CLIPCL_WITH_FAISS)
  set(CLIPCL_PC_FAISS " -lfaiss -fopenmp -llapack -lblas -lstdc++")
endif()
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/clipclConfig.cmake.in
  ${CMAKE_BINARY_DIR}/generated/clipclConfig.cmake INSTALL_DESTINATION ${CLIPCL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/generated/clipclConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/generated/clipclConfig.cmake
  ${CMAKE_BINARY_DIR}/generated/clipclConfigVersion.cmake DESTINATION ${CLIPCL_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own folder
file(RELATIVE_PATH CLIPCL_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${CMAKE_SOURCE_DIR}/cmake/clipcl.pc.in ${CMAKE_BINARY_DIR}/generated/clipcl.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/generated/clipcl.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
