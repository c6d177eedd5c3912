/* Fault injection for the crash and race tests. DEPLOYCTL_FAULT holds a comma-separated list
 * of points: "NAME" kills the process with SIGKILL when it reaches NAME (as a power cut or the
 * OOM killer would); "NAME:sleep=SECONDS" pauses there, so a test can act in that window.
 * Off unless the variable is set. */
#ifndef DEPLOYCTL_FAULT_H
#define DEPLOYCTL_FAULT_H

#include <stdbool.h>

/* Points: "before-manifest" (archive committed, manifest not yet written), "before-lock"
 * (tables listed, not yet locked), "after-export" (snapshot exported, newcomers not yet
 * locked), "clean-after-scan" (the cleaner listed the store, has not removed anything),
 * "restore-before-commit" (an in-place restore has replaced everything, not yet committed),
 * "restore-chunk-loaded" (a restore sent a table chunk; its COPY is still open),
 * "backup-chunk-ended" (a backup worker ended a chunk, mid-COPY when more rows follow),
 * "release-phase-PHASE" (a release phase journaled its start, has done nothing yet),
 * "s3-after-part" (a part of an S3 multipart upload is stored, the upload is not complete),
 * "release-scratch-created" (release --rehearse created and journaled its scratch database,
 * nothing restored into it yet). */
void dc_fault_point(const char *name);

/* "NAME:fail" in DEPLOYCTL_FAULT: the caller fails there as if the disk were full. Points:
 * "release-journal-after-migrate" (every release journal write once the migrate phase began),
 * "release-journal-in-compensation" (every one after compensation's first line). */
bool dc_fault_fails(const char *name);

#endif
