#include <cstdio>
int main() { std::puts("tern"); return 0; }
