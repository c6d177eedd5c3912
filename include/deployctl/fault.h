/* Fault injection for the crash tests: when DEPLOYCTL_FAULT names a point the process reaches,
 * it kills itself there with SIGKILL, as a power cut or the OOM killer would. Off unless set. */
#ifndef DEPLOYCTL_FAULT_H
#define DEPLOYCTL_FAULT_H

/* Points: "before-manifest" (archive committed, manifest not written yet). */
void dc_fault_point(const char *name);

#endif
