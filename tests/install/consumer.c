/* A program outside the tree, built against the installed uhmm. */
#include <stdio.h>
#include <uhmm.h>

int main(void)
{
	struct uhmm_caps caps;
	int r = uhmm_probe(&caps);

	printf("uhmm %s: probe %d, thread mode %d\n", uhmm_version(), r, caps.thread_mode);
	return r == 0 || r == -1 /* EPERM */ ? 0 : 1;
}
