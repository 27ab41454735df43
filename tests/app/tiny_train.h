#pragma once
// The smallest real training run, on the committed sample (100 Swiss-Prot entries): 6 CPU steps of
// 6 pairs with a 16-wide model. Shared by the app test files.
#include <string>

#include "app/train.h"

inline pe::TrainOptions tiny_options(const std::string& out) {
  pe::TrainOptions o;
  o.train_path = std::string(PE_SOURCE_DIR) + "/data/samples/SWISS100.dat";
  o.out = out;
  o.device = "cpu";
  o.batch_size = 6;
  o.steps = 6;
  o.lr = 1e-3;
  o.embed_dim = 16;
  o.fusion_heads = 2;
  o.text_hidden = 16;
  o.text_heads = 2;
  o.text_layers = 1;
  o.text_vocab_size = 300;
  o.max_protein_len = 40;
  o.max_text_len = 24;
  o.log_every = 1;
  o.save_every = 3;
  o.keep = 5;
  o.seed = 3;
  return o;
}
