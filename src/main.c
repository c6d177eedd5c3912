/* deployctl's entry point: everything happens in the CLI module; main only returns its code. */
#include "deployctl/cli.h"

int main(int argc, char **argv)
{
    return dc_cli_main(argc, argv);
}
