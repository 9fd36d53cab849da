#include "tools/cli.h"

int main(int argc, char** argv) { return edgepress::tools::Main(argc, argv); }
