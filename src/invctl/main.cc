// invctl: the operator's command-line client of inventoryd. Everything but
// process start-up lives in cli.cc; run `invctl help` for the commands.
#include <iostream>
#include <string>
#include <vector>

#include "invctl/cli.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int code = invctl::RunCli(args, std::cout, std::cerr);
  std::cout.flush();
  return code;
}
