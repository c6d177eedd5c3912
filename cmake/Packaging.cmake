# What `cmake --install` puts where, and the Debian package CPack builds from it
# (`cpack -G DEB` in the build directory; see packaging/README.md).
#
# The files a package puts under /etc and /lib/systemd are in the component "system", which a
# plain `cmake --install` leaves out (it must not write to /etc); the package includes it.
include(GNUInstallDirs)

install(TARGETS deployctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES etc/deployctl.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The manual page, compressed as Debian ships them.
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/deployctl.1.gz
                   COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/docs/deployctl.1 > ${CMAKE_BINARY_DIR}/deployctl.1.gz
                   DEPENDS ${CMAKE_SOURCE_DIR}/docs/deployctl.1
                   COMMENT "Compressing the manual page")
add_custom_target(manpage ALL DEPENDS ${CMAKE_BINARY_DIR}/deployctl.1.gz)
install(FILES ${CMAKE_BINARY_DIR}/deployctl.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

install(FILES packaging/bash-completion/deployctl
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(DIRECTORY hooks/ DESTINATION ${CMAKE_INSTALL_DATADIR}/deployctl/hooks USE_SOURCE_PERMISSIONS)
install(FILES packaging/cron/deployctl-backup packaging/systemd/credentials.conf.example
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES packaging/systemd/deployctl.sysusers DESTINATION lib/sysusers.d
        RENAME deployctl.conf)

install(FILES etc/deployctl.conf DESTINATION /etc/deployctl COMPONENT system EXCLUDE_FROM_ALL)
install(FILES packaging/systemd/deployctl-backup.service packaging/systemd/deployctl-backup.timer
        DESTINATION /lib/systemd/system COMPONENT system EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME deployctl)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "deployctl maintainers <deployctl@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "transactional deploys for PostgreSQL-backed applications")
set(CPACK_PACKAGE_DESCRIPTION
    "deployctl makes each production deploy a transaction: a verified snapshot, the migrations,
verification, the deploy and smoke tests, or the hosting platform's rollback and the database
brought back. It also takes nightly verified backups (systemd timer deployctl-backup.timer).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# One package holding both components: each is installed into the package's tree in turn.
set(CPACK_INSTALL_CMAKE_PROJECTS
    "${CMAKE_BINARY_DIR};deployctl;Unspecified;/;${CMAKE_BINARY_DIR};deployctl;system;/")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/deployctl/deployctl")
# Runtime libraries from dpkg-shlibdeps (Debian package dpkg-dev); pg_dump from the client.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "postgresql-client")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, prometheus-node-exporter")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
