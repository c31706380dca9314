/*
 * kiro2api doctor: checks every configured account end to end (refresh, profileArn and region, model catalog,
 * usage, one minimal generate call) without starting the server, and prints a verdict with a fix hint per account.
 */
#ifndef K2A_DOCTOR_DOCTOR_H
#define K2A_DOCTOR_DOCTOR_H

/* argv[0] is "doctor". Returns the process exit status: 0 when every enabled account works, 1 when one does not, 2 for a
 * usage or configuration error. */
int k2a_doctor_main(int argc, char **argv);

#endif
