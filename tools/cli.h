/* SPDX-License-Identifier: MIT */
/* cli.h - the uhmm commands, one file each. */
#ifndef UHMM_CLI_H
#define UHMM_CLI_H

int uhmm_cli_info(int argc, char **argv);
int uhmm_cli_bench(int argc, char **argv);
int uhmm_cli_demo(int argc, char **argv);
int uhmm_cli_chaos(int argc, char **argv);

#endif
