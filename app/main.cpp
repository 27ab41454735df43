// protst: train, evaluate and use ProtST-style protein–text models.
#include "app/cli.h"

int main(int argc, char** argv) { return pe::protst_main(argc, argv); }
