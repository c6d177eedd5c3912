/* The schema in the target database where `deployctl release` mirrors its journal. It is
 * deployctl's, not the application's: snapshots never hold it (backup excludes it), a restore
 * never drops or replaces it (the release that restores must still find its journal), and its
 * tables do not count as the user's data. */
#ifndef DEPLOYCTL_RELEASE_SCHEMA_H
#define DEPLOYCTL_RELEASE_SCHEMA_H

#define DC_RELEASE_SCHEMA "deployctl"

/* The same as an SQL string literal, for catalog queries. */
#define DC_RELEASE_SCHEMA_SQL "'" DC_RELEASE_SCHEMA "'"

#endif
