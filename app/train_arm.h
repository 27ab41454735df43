#pragma once
// `protst train --task describe|design` (app/train_arm.cpp): trains a generative arm of issue #12 on a
// trained ProtST checkpoint (--from-checkpoint), with the training loop's checkpoints, resume,
// progress, metrics.jsonl and curves.png.
#include "app/train.h"

namespace pe {

void train_arm(const TrainOptions& opt);

}  // namespace pe
