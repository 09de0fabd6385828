#include "harness.h"
TEST(stub) { SKIP(return, "stub"); }
