// protst: train, evaluate and use ProtST-style protein–text models. The command-line interface:
// every option of every command is defined here.
#include "app/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "app/arms.h"
#include "app/commands.h"
#include "dist/communicator.h"
#include "app/dataset_command.h"
#include "app/embed.h"
#include "app/probe.h"
#include "app/train.h"
#include "app/train_arm.h"
#include "data/go_dataset.h"

namespace pe {

namespace {
// The top-level error handler. In a job of several processes (mpirun, srun) a rank that fails must
// not leave the others waiting in a collective: it names itself and ends the whole job (MPI_Abort;
// the launcher then stops every rank with a non-zero status). One process: the message, exit 1.
void report_error_and_end_job(const char* what) {
  auto [rank, size] = dist::job_rank_and_size();
  if (size > 1) {
    std::fflush(stdout);
    std::fprintf(stderr, "protst: rank %d/%d: error: %s\nprotst: rank %d/%d: ending every rank of the job\n", rank,
                 size, what, rank, size);
    std::fflush(stderr);
    dist::abort_job(1);  // does not return when MPI is running
  }
  std::fprintf(stderr, "protst: error: %s\n", what);
}
}  // namespace

int protst_main(int argc, const char* const* argv) {
  CLI::App app{
      "protst: train ProtST-style protein-text models (ESM-2 + BERT, InfoNCE, cross-attention fusion, masked\n"
      "prediction) on CPU or CUDA, evaluate held-out retrieval, embed sequences, probe function prediction,\n"
      "and train the embedding conversion MLPs. Run `protst <command> --help` for the options of a command."};
  app.require_subcommand(1);
  app.set_config("--config", "", "TOML/INI file of options (sections name the command, e.g. [train]; keys are the long option names), given before or after the command; flags on the command line override it");

  // ------------------------------------------------------------------ train
  TrainOptions t;
  CLI::App* tr = app.add_subcommand("train", "Train a model; resumes from the newest checkpoint in --out unless --no-resume");
  tr->add_option("--train", t.train_path, "Training pairs: .jsonl {id,seq,text}, UniProt .dat, or .fasta with --descriptions (.gz ok)");
  tr->add_option("--test", t.test_path, "Held-out pairs (same formats), evaluated at the end and with --eval-every");
  tr->add_option("--descriptions", t.descriptions, "TSV or JSONL of accession -> text for FASTA inputs");
  tr->add_flag("--go-dataset", t.go_dataset, "Build (or reuse) the Swiss-Prot/GO pairs from Debian's metastudent-data, split by mmseqs2 clusters");
  tr->add_option("--go-cache", t.go_cache, "Cache folder of the GO dataset build")->capture_default_str();
  tr->add_option("--go-subset-train", t.go_subset_train, "Keep this many training pairs of the GO dataset (0 = all)")->capture_default_str();
  tr->add_option("--go-subset-test", t.go_subset_test, "Keep this many test pairs of the GO dataset (0 = all)")->capture_default_str();
  tr->add_option("--go-max-len", t.go_max_len, "Drop GO-dataset proteins longer than this (0 = keep all)")->capture_default_str();
  tr->add_option("--go-split-identity", t.go_split_identity,
                 "GO dataset: drop test proteins with a training homolog at this identity (0.3 = low-homology split)")
      ->capture_default_str();
  tr->add_option("--go-split-coverage", t.go_split_coverage, "GO dataset: ... over this fraction of either protein")
      ->capture_default_str();
  tr->add_option("--protein-model", t.protein_model, "Hugging Face EsmForMaskedLM folder (config.json + model.safetensors) to start from");
  tr->add_option("--protein-preset", t.protein_preset, "From-scratch protein encoder size: tiny, esm2_8m, esm2_35m, esm2_150m, esm2_650m")->capture_default_str();
  tr->add_option("--text-model", t.text_model, "Hugging Face BertModel/BertForMaskedLM folder with vocab.txt (e.g. PubMedBERT)");
  tr->add_option("--text-vocab", t.text_vocab, "vocab.txt for a from-scratch text encoder (default: WordPiece trained on the training texts)");
  tr->add_option("--text-vocab-size", t.text_vocab_size, "Size of the WordPiece vocabulary trained when none is given")->capture_default_str();
  tr->add_option("--text-layers", t.text_layers, "From-scratch text encoder layers")->capture_default_str();
  tr->add_option("--text-hidden", t.text_hidden, "From-scratch text encoder width")->capture_default_str();
  tr->add_option("--text-heads", t.text_heads, "From-scratch text encoder heads")->capture_default_str();
  tr->add_option("--embed-dim", t.embed_dim, "Shared embedding / fusion width (ProtST: 512)")->capture_default_str();
  tr->add_option("--fusion-heads", t.fusion_heads, "Fusion attention heads (ProtST: 8)")->capture_default_str();
  tr->add_option("--fusion-layers", t.fusion_layers, "Fusion layers (ProtST: 1)")->capture_default_str();
  tr->add_option("--freeze-text", t.freeze_text, "auto (frozen when loaded from a checkpoint, as ProtST), true or false")->capture_default_str();
  tr->add_option("--w-mlm", t.w_mlm, "Weight of the protein MLM loss")->capture_default_str();
  tr->add_option("--w-mmp", t.w_mmp, "Weight of the multimodal masked prediction losses")->capture_default_str();
  tr->add_option("--w-contrastive", t.w_cl, "Weight of the InfoNCE loss (0 with --w-mmp 0: masked-LM-only pretraining, the MLM-only row of protst probe)")->capture_default_str();
  tr->add_option("--lr", t.lr, "Peak learning rate (ProtST: 1e-5)")->capture_default_str();
  tr->add_option("--protein-lr-ratio", t.protein_lr_ratio, "Learning-rate factor of the protein encoder (ProtST: 0.1)")->capture_default_str();
  tr->add_option("--weight-decay", t.weight_decay, "Weight decay")->capture_default_str();
  tr->add_flag("--adamw", t.adamw, "Decoupled weight decay (AdamW) instead of L2 in Adam");
  tr->add_option("--schedule", t.schedule, "constant or cosine, after --warmup linear warm-up steps")->capture_default_str();
  tr->add_option("--warmup", t.warmup, "Linear warm-up steps")->capture_default_str();
  tr->add_option("--min-lr-ratio", t.min_lr_ratio, "Cosine floor as a fraction of --lr")->capture_default_str();
  tr->add_option("--clip", t.clip, "Clip the global gradient norm to this (0 = off)")->capture_default_str();
  tr->add_option("--grad-accum", t.grad_accum, "Micro-batches per optimiser step")->capture_default_str();
  tr->add_option("--batch-size", t.batch_size, "Pairs per micro-batch (ProtST: 12 global)")->capture_default_str();
  tr->add_option("--steps", t.steps, "Optimiser steps (0 = --epochs)")->capture_default_str();
  tr->add_option("--epochs", t.epochs, "Epochs when --steps is 0 (ProtST: 20)")->capture_default_str();
  tr->add_option("--max-protein-len", t.max_protein_len, "Training crop in residues, random offset (ProtST: 450)")->capture_default_str();
  tr->add_option("--eval-max-protein-len", t.eval_max_protein_len, "Evaluation keeps the first N residues")->capture_default_str();
  tr->add_option("--max-text-len", t.max_text_len, "Text tokens including [CLS]/[SEP]")->capture_default_str();
  tr->add_option("--contrastive-positives", t.contrastive_positives,
                 "InfoNCE positives: same-text (every pair with an identical text) or diagonal (only the row's own "
                 "pair, as ProtST's targets; identical texts are then negatives)")
      ->capture_default_str();
  tr->add_flag("--local-batchnorm", t.local_batchnorm,
               "Data-parallel runs: normalise the fusion BatchNorm with each rank's own statistics (as ProtST's DDP did) "
               "instead of synchronised statistics over all ranks (the default, which equals one process)");
  tr->add_option("--bucket-mb", t.bucket_mb,
                 "Data-parallel runs: all-reduce the gradients in buckets of about this many MB, each started as soon "
                 "as its gradients are final, overlapped with the rest of the backward (0 = one all-reduce per "
                 "parameter tensor after the backward)")
      ->capture_default_str();
  tr->add_option("--grad-comm", t.grad_comm,
                 "Data-parallel runs: the dtype the gradient buckets travel in, f32 (the gradients' own) or bf16 "
                 "(half the bytes, rounded once per rank; sums accumulate in f32 on MPI); needs --bucket-mb > 0 "
                 "and not --zero 1")
      ->capture_default_str();
  tr->add_option("--zero", t.zero,
                 "Data-parallel runs: 1 = ZeRO stage 1, the Adam moments sharded over the ranks (gradient "
                 "reduce-scatter after the backward, each rank updates its slice, parameters all-gathered; "
                 "--bucket-mb does not apply); checkpoints stay complete and resume with or without it")
      ->capture_default_str();
  tr->add_option("--collective-timeout", t.collective_timeout,
                 "Data-parallel runs: seconds a training step may make no progress (a rank that hangs without "
                 "failing, a peer that stopped answering) before every rank is ended with a message (0 = off)")
      ->capture_default_str();
  tr->add_flag("--bert-mask", t.bert_mask, "BERT-style 80/10/10 protein masking instead of ProtST's all-<mask>");
  tr->add_option("--seed", t.seed, "Seed of initialisation, data order and masking")->capture_default_str();
  tr->add_option("--device", t.device, "cpu, cuda, cuda:N or auto (CUDA when present)")->capture_default_str();
  tr->add_option("--precision", t.precision, "auto (bf16 matrix products on CUDA, f32 on CPU), f32, bf16, or f64 (CPU only: every weight, activation and optimizer state in float64 -- a slow reference run for checking numerics)")->capture_default_str();
  tr->add_option("--out", t.out, "Run folder: checkpoints/, metrics.jsonl, curves.png, final/, eval.json")->capture_default_str();
  tr->add_option("--save-every", t.save_every, "Checkpoint every N steps (atomic; also at the end)")->capture_default_str();
  tr->add_option("--keep", t.keep, "Checkpoints kept")->capture_default_str();
  tr->add_option("--eval-every", t.eval_every, "Held-out retrieval every N steps (0 = only at the end)")->capture_default_str();
  tr->add_option("--eval-subset", t.eval_subset, "Test pairs used by periodic evaluation (0 = all)")->capture_default_str();
  tr->add_option("--task", t.task,
                 "contrastive (ProtST pretraining), describe (protein -> text decoder) or design (text -> protein "
                 "decoder); the arms train on a ProtST checkpoint given by --from-checkpoint")
      ->capture_default_str();
  tr->add_option("--from-checkpoint", t.from_checkpoint,
                 "describe/design: the trained ProtST checkpoint whose encoders (and text tokenizer) the arm uses");
  tr->add_option("--decoder-layers", t.decoder_layers, "describe/design: decoder layers")->capture_default_str();
  tr->add_option("--decoder-hidden", t.decoder_hidden, "describe/design: decoder width")->capture_default_str();
  tr->add_option("--decoder-heads", t.decoder_heads, "describe/design: decoder attention heads")->capture_default_str();
  tr->add_option("--encoder-lr-ratio", t.encoder_lr_ratio,
                 "describe/design: learning-rate factor of the encoder read by the decoder (0 = frozen)")
      ->capture_default_str();
  tr->add_option("--condition", t.condition,
                 "describe/design: what the decoder reads: cross (cross-attention to the encoder's hidden states), "
                 "prefix (a prefix projected from the input's pooled ProtST embedding) or imputed (a prefix from the "
                 "missing side's embedding: trained on the real one, evaluated on the one the conversion MLP imputes; "
                 "needs a `protst convert` checkpoint)")
      ->capture_default_str();
  tr->add_option("--prefix-length", t.prefix_length, "describe/design: prefix vectors of --condition prefix|imputed")
      ->capture_default_str();
  tr->add_option("--eval-generate", t.eval_generate,
                 "describe/design: held-out pairs decoded greedily at the end, written to <out>/samples.jsonl")
      ->capture_default_str();
  tr->add_option("--eval-design-prompts", t.eval_design_prompts,
                 "design: held-out prompts (test texts no training pair has) of the final design evaluation "
                 "(validity, diversity, novelty, retrieval; 0 = skip)")
      ->capture_default_str();
  tr->add_option("--eval-design-per-prompt", t.eval_design_per_prompt,
                 "design: designs sampled per prompt in the final design evaluation")
      ->capture_default_str();
  tr->add_option("--judge-checkpoint", t.judge_checkpoint,
                 "design: ProtST checkpoint that judges retrieval (default: the one the arm was trained on)");
  tr->add_option("--log-every", t.log_every, "Progress line and metrics every N steps")->capture_default_str();
  tr->add_option("--max-skipped-steps", t.max_skipped_steps,
                 "Stop with an error after this many consecutive steps with a non-finite loss or gradient "
                 "(skipped steps leave the weights unchanged; the newest checkpoint keeps the last good ones)")
      ->capture_default_str();
  tr->add_flag("!--no-resume", t.resume,
               "Start fresh; refused when --out already holds a run's results, unless --overwrite");
  tr->add_flag("--overwrite", t.overwrite,
               "With --no-resume: delete the checkpoints, metrics.jsonl, eval.json and final/ already in --out");

  // ------------------------------------------------------------------ eval
  EvalCommandOptions e;
  CLI::App* ev = app.add_subcommand("eval", "Held-out retrieval (recall@1/10, MRR vs chance), MLM/MMP accuracy, zero-shot classification");
  ev->add_option("--checkpoint", e.checkpoint, "Training checkpoint (.safetensors)")->required();
  ev->add_option("--test", e.test_path, "Held-out pairs");
  ev->add_option("--descriptions", e.descriptions, "TSV/JSONL descriptions for FASTA inputs");
  ev->add_option("--zero-shot-prompts", e.zero_shot_prompts, "TSV of label<TAB>prompt");
  ev->add_option("--zero-shot-data", e.zero_shot_data, "Pairs whose text is the true label");
  ev->add_option("--json", e.json_out, "Also write the results as JSON here");
  ev->add_option("--device", e.device, "cpu, cuda or auto")->capture_default_str();
  ev->add_option("--batch-size", e.batch_size, "Batch size")->capture_default_str();
  ev->add_option("--max-protein-len", e.max_protein_len, "Keep the first N residues")->capture_default_str();

  // ------------------------------------------------------------------ embed
  EmbedOptions m;
  CLI::App* em = app.add_subcommand(
      "embed",
      "Embed proteins (FASTA) or texts (one per line), in input order, ids written beside the vectors.\n"
      "From a ProtST checkpoint: L2-normalised joint-space embeddings. From a Hugging Face encoder folder\n"
      "(--protein-model / --text-model, like fair-esm's extract.py): raw hidden states of --repr-layers,\n"
      "the mean over each sequence's tokens (special tokens and padding excluded) and/or every token.");
  em->add_option("--checkpoint", m.checkpoint, "ProtST training checkpoint (.safetensors)");
  em->add_option("--protein-model", m.protein_model, "Hugging Face EsmForMaskedLM folder (config.json + model.safetensors), e.g. facebook/esm2_t12_35M_UR50D");
  em->add_option("--text-model", m.text_model, "Hugging Face BERT folder (config.json, model.safetensors, vocab.txt)");
  em->add_option("--input", m.input, "FASTA (.gz ok) or a text file with one description per line; recognised by content")->required();
  em->add_option("--output", m.output,
                 "Output .npy (float32 [N, dim]) or .safetensors (several layers, per_tok); ids go to <output stem>.ids.txt")->required();
  em->add_option("--kind", m.kind, "protein, text or auto (a file whose first non-blank character is '>' is FASTA)")->capture_default_str();
  em->add_option("--include", m.include, "Encoder folders: mean (per sequence) and/or per_tok (every token)")->capture_default_str();
  em->add_option("--repr-layers", m.repr_layers, "Encoder folders: layers to output; 0 = embeddings, n = after layer n, -1 = last")->capture_default_str();
  em->add_option("--device", m.device, "cpu, cuda or auto")->capture_default_str();
  em->add_option("--batch-size", m.batch_size, "Sequences per batch (results do not depend on it)")->capture_default_str();
  em->add_option("--max-protein-len", m.max_protein_len, "Keep the first N residues of longer proteins")->capture_default_str();
  em->add_option("--max-text-len", m.max_text_len, "Keep the first N text tokens, [CLS] and [SEP] included")->capture_default_str();
  em->add_flag("!--no-progress", m.progress, "No progress line on stderr");

  // ------------------------------------------------------------------ convert
  ConvertOptions c;
  CLI::App* cv = app.add_subcommand("convert", "Stage two: train the protein<->text embedding conversion MLPs with the encoders frozen");
  cv->add_option("--checkpoint", c.checkpoint, "Trained checkpoint")->required();
  cv->add_option("--train", c.train_path, "Training pairs")->required();
  cv->add_option("--test", c.test_path, "Held-out pairs for MSE and imputed retrieval");
  cv->add_option("--descriptions", c.descriptions, "TSV/JSONL descriptions for FASTA inputs");
  cv->add_option("--output", c.output, "Checkpoint to write (with the conversion MLPs)")->required();
  cv->add_option("--steps", c.steps, "Steps")->capture_default_str();
  cv->add_option("--batch-size", c.batch_size, "Batch size")->capture_default_str();
  cv->add_option("--lr", c.lr, "Learning rate")->capture_default_str();
  cv->add_option("--seed", c.seed, "Seed")->capture_default_str();
  cv->add_option("--device", c.device, "cpu, cuda or auto")->capture_default_str();

  // ------------------------------------------------------------------ describe / design (app/arms.cpp)
  ArmGenerateOptions gd, gs;
  auto generation_options = [](CLI::App* sc, ArmGenerateOptions& g) {
    sc->add_option("--checkpoint", g.checkpoint, "Checkpoint written by `protst train --task describe|design`")->required();
    sc->add_option("--output", g.output, "Output file (written atomically)")->required();
    sc->add_option("--strategy", g.strategy, "greedy, sample (temperature / top-k / top-p) or beam")->capture_default_str();
    sc->add_option("--num", g.num, "Sequences per input (sample: independent draws; beam: the best beams)")->capture_default_str();
    sc->add_option("--max-length", g.max_length, "Generated tokens at most (0 = the decoder's positions)")->capture_default_str();
    sc->add_option("--min-length", g.min_length, "The end token is barred before this many tokens")->capture_default_str();
    sc->add_option("--temperature", g.temperature, "sample: divide the logits by this")->capture_default_str();
    sc->add_option("--top-k", g.top_k, "sample: keep the k most likely tokens (0 = all)")->capture_default_str();
    sc->add_option("--top-p", g.top_p, "sample: keep the smallest set of tokens reaching this probability")->capture_default_str();
    sc->add_option("--num-beams", g.num_beams, "beam: beam width")->capture_default_str();
    sc->add_option("--length-penalty", g.length_penalty, "beam: finished beams score log p / length^this")->capture_default_str();
    sc->add_option("--repetition-penalty", g.repetition_penalty, "> 1 discourages tokens already generated (HF rule)")->capture_default_str();
    sc->add_option("--seed", g.seed, "sample: input i draws from its own stream (seed, i)")->capture_default_str();
    sc->add_option("--batch-size", g.batch_size, "Inputs decoded together")->capture_default_str();
    sc->add_option("--device", g.device, "cpu, cuda or auto")->capture_default_str();
    sc->add_flag("!--no-progress", g.progress, "No progress line on stderr");
  };
  CLI::App* de = app.add_subcommand("describe", "Write function descriptions of proteins with a describe arm (protein -> text)");
  de->add_option("--input", gd.input, "Proteins (FASTA, gzip ok)")->required();
  de->add_option("--max-protein-len", gd.max_protein_len, "Keep the first N residues of each protein")->capture_default_str();
  generation_options(de, gd);
  CLI::App* dz = app.add_subcommand("design", "Write protein sequences for text prompts with a design arm (text -> protein; "
                                               "the 20 standard amino acids only)");
  dz->add_option("--prompts", gs.input, "Descriptions, one per line");
  dz->add_option("--max-text-len", gs.max_text_len, "Prompt tokens kept, [CLS]/[SEP] included")->capture_default_str();
  dz->add_flag("--evaluate", gs.evaluate,
               "Evaluate the arm instead (validity, diversity, novelty, retrieval on held-out prompts from --test whose "
               "text no --train pair has, --num sampled designs each, next to baselines); --output names the JSON report");
  dz->add_option("--train", gs.train, "--evaluate: the training pairs of the arm (JSONL, UniProt .dat, FASTA with --descriptions)");
  dz->add_option("--test", gs.test, "--evaluate: the held-out pairs");
  dz->add_option("--descriptions", gs.descriptions, "--evaluate: descriptions of FASTA pair files (TSV or JSONL)");
  dz->add_option("--eval-prompts", gs.eval_prompts, "--evaluate: held-out prompts (0 = all that qualify)")->capture_default_str();
  dz->add_option("--judge-checkpoint", gs.judge_checkpoint,
                 "--evaluate: ProtST checkpoint that judges retrieval (default: the arm's own ProtST model)");
  dz->add_option("--go-cache", gs.go_cache, "--evaluate: GO dataset build folder holding the mmseqs2 package (novelty)")
      ->capture_default_str();
  dz->add_option("--max-protein-len", gs.max_protein_len, "--evaluate: residues of a protein the judge reads")
      ->capture_default_str();
  generation_options(dz, gs);

  // ------------------------------------------------------------------ dataset
  DatasetCommandOptions d;
  GoDatasetOptions& g = d.go;
  std::vector<std::string> check_split;
  CLI::App* ds = app.add_subcommand("dataset", "Build the Swiss-Prot/GO pair dataset offline from Debian packages (cached), "
                                               "or check a train/test split for homologs (--check-split)");
  ds->add_option("--cache", g.cache_dir, "Cache folder")->capture_default_str();
  ds->add_option("--out", g.out_dir, "Output folder (default: inside the cache)");
  ds->add_option("--test-fraction", g.test_fraction, "Fraction of clusters held out")->capture_default_str();
  ds->add_option("--max-len", g.max_seq_len, "Drop proteins longer than this (0 = keep all)")->capture_default_str();
  ds->add_option("--subset-train", g.subset_train, "Keep N training pairs (0 = all)")->capture_default_str();
  ds->add_option("--subset-test", g.subset_test, "Keep N test pairs (0 = all)")->capture_default_str();
  ds->add_option("--split-identity", g.split_identity,
                 "Drop a test protein whose closest training protein (mmseqs search) reaches this identity; 0 = cluster split only")
      ->capture_default_str();
  ds->add_option("--split-coverage", g.split_coverage, "... over at least this fraction of the test or the training protein")
      ->capture_default_str();
  ds->add_option("--split-sensitivity", g.split_sensitivity, "mmseqs -s of the split search (1 to 7.5; 5.7 is mmseqs' default)")->capture_default_str();
  ds->add_flag("--strict-split", d.strict, "Low-homology split: --split-identity 0.3 --split-sensitivity 7.5");
  ds->add_option("--threads", g.threads, "mmseqs threads (0 = all cores)")->capture_default_str();
  ds->add_option("--check-split", check_split,
                 "TRAIN TEST: report test entries with a training homolog at the --split-identity/--split-coverage criterion; "
                 "the files are not changed")
      ->expected(2);
  ds->add_option("--descriptions", d.descriptions, "TSV/JSONL descriptions for FASTA inputs of --check-split");
  ds->add_option("--report", d.report, "With --check-split: write every leaky entry as TSV here");

  // ------------------------------------------------------------------ probe
  ProbeCommandOptions pr;
  CLI::App* pb = app.add_subcommand("probe", "Function prediction on held-out clusters from frozen embeddings: linear/MLP "
                                             "probes, early and late fusion, CAFA metrics (--help explains tasks and metrics)");
  pb->footer(kProbeHelp);
  pb->add_option("--checkpoint", pr.checkpoint, "ProtST training checkpoint (.safetensors)")->required();
  pb->add_option("--mlm-checkpoint", pr.mlm_checkpoint, "Checkpoint of the same architecture trained by masked LM only (adds the 'MLM only' encoder row)");
  pb->add_flag("!--no-random-init", pr.random_init, "Leave out the randomly initialised encoder row");
  pb->add_option("--task", pr.tasks, "go-mf, go-bp, go-cc, go-cc-multimodal and/or files (several share the protein embeddings)")
      ->delimiter(',')->capture_default_str();
  pb->add_option("--go-pairs", pr.go_pairs, "Folder of the GO pair dataset (train.jsonl, test.jsonl) from `protst dataset`")->capture_default_str();
  pb->add_option("--go-cache", pr.go_cache, "GO dataset cache (metastudent-data annotations, mmseqs clusters)")->capture_default_str();
  pb->add_option("--clusters", pr.clusters, "mmseqs cluster TSV (rep<TAB>member) for the leakage check (default <go-cache>/cluster-id0.5-c0.8/clu_cluster.tsv; for files: optional)");
  pb->add_option("--input", pr.input, "--task files: proteins as FASTA or JSONL {id, seq[, text]}");
  pb->add_option("--descriptions", pr.descriptions, "--task files: TSV/JSONL texts for a FASTA --input");
  pb->add_option("--labels", pr.labels, "--task files: TSV id<TAB>train|test|auto<TAB>label[;label...] (auto: split by mmseqs clusters)");
  pb->add_option("--test-fraction", pr.test_fraction, "--task files, split auto: share of the mmseqs clusters that go to test")
      ->capture_default_str();
  pb->add_flag("--multi-label", pr.multi_label, "--task files: multi-label even when every protein has one label");
  pb->add_option("--min-train-proteins", pr.min_train_proteins, "Keep terms annotated to at least N training proteins")->capture_default_str();
  pb->add_option("--max-train", pr.max_train, "Use at most N training proteins (stable hash subset; 0 = all)")->capture_default_str();
  pb->add_option("--seeds", pr.seeds, "Seeds 0..N-1 of every predictor; metrics are mean ± std over them")->capture_default_str();
  pb->add_option("--epochs", pr.epochs, "Predictor training epochs")->capture_default_str();
  pb->add_option("--batch-size", pr.batch_size, "Predictor mini-batch")->capture_default_str();
  pb->add_option("--hidden", pr.hidden, "MLP hidden width")->capture_default_str();
  pb->add_option("--lr", pr.lr, "Predictor Adam learning rate")->capture_default_str();
  pb->add_option("--weight-decay", pr.weight_decay, "Predictor L2 weight decay")->capture_default_str();
  pb->add_option("--folds", pr.folds, "Out-of-fold splits of train for the stacking aggregator")->capture_default_str();
  pb->add_option("--features", pr.features, "encoder (pooled last hidden states of each encoder) or joint (protst embed's L2-normalised joint-space vectors)")->capture_default_str();
  pb->add_flag("--joint,!--no-joint", pr.joint, "Joint fusion row: the model's fused representation fine-tuned end to end (sequence-only tasks: the protein encoder fine-tuned)")->capture_default_str();
  pb->add_flag("--joint-all-encoders", pr.joint_all_encoders, "Joint rows for the MLM-only and random-init encoders too (default: ProtST only; each is a fine-tuning per seed)");
  pb->add_option("--joint-epochs", pr.joint_epochs, "Joint fine-tuning epochs")->capture_default_str();
  pb->add_option("--joint-batch-size", pr.joint_batch_size, "Joint fine-tuning mini-batch")->capture_default_str();
  pb->add_option("--joint-lr", pr.joint_lr, "Joint AdamW learning rate of the head, projections and fusion block")->capture_default_str();
  pb->add_option("--joint-encoder-lr-ratio", pr.joint_encoder_lr_ratio, "Encoders train at --joint-lr times this (ProtST's protein-encoder ratio)")->capture_default_str();
  pb->add_option("--joint-weight-decay", pr.joint_weight_decay, "Joint AdamW (decoupled) weight decay")->capture_default_str();
  pb->add_option("--joint-max-train", pr.joint_max_train, "Fine-tune on at most N training proteins (stable hash subset; 0 = all), for CPU time")->capture_default_str();
  pb->add_option("--joint-max-protein-len", pr.joint_max_protein_len, "Joint fine-tuning and its predictions keep the first N residues")->capture_default_str();
  pb->add_option("--out", pr.out, "Output folder")->capture_default_str();
  pb->add_option("--device", pr.device, "cpu, cuda or auto (embedding and joint fine-tuning; frozen predictors train on the CPU)")->capture_default_str();
  pb->add_option("--embed-batch-size", pr.embed_batch_size, "Sequences per embedding batch")->capture_default_str();
  pb->add_option("--max-protein-len", pr.max_protein_len, "Embedding keeps the first N residues")->capture_default_str();
  pb->add_option("--max-text-len", pr.max_text_len, "Embedding keeps the first N text tokens")->capture_default_str();

  // --config belongs to the top-level app (its sections, e.g. [train], name the subcommand), yet
  // the README writes `protst train --config FILE`: accept it anywhere by moving it to the front.
  std::vector<const char*> args{argc > 0 ? argv[0] : "protst"}, rest;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      args.push_back(argv[i]);
      args.push_back(argv[++i]);
    } else if (a.rfind("--config=", 0) == 0) {
      args.push_back(argv[i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  args.insert(args.end(), rest.begin(), rest.end());
  CLI11_PARSE(app, int(args.size()), args.data());
  set_flush_denormals(true);
  try {
    if (*tr) {
      if (t.task == "contrastive") train(t);
      else train_arm(t);
    }
    else if (*ev) run_eval(e);
    else if (*em) run_embed(m);
    else if (*pb) run_probe_command(pr);
    else if (*cv) run_convert(c);
    else if (*de) run_arm_generation(ArmTask::Describe, gd);
    else if (*dz) {
      if (gs.evaluate) {
        if (dz->count("--strategy") == 0) gs.strategy = "sample";
        if (dz->count("--num") == 0) gs.num = 4;
        run_design_evaluation(gs);
      } else {
        run_arm_generation(ArmTask::Design, gs);
      }
    }
    else if (*ds) {
      if (check_split.size() == 2) {
        d.check_train = check_split[0];
        d.check_test = check_split[1];
      }
      run_dataset(d);
    }
  } catch (const std::exception& ex) {
    report_error_and_end_job(ex.what());
    return 1;
  } catch (...) {
    report_error_and_end_job("unknown exception");
    return 1;
  }
  return 0;
}

}  // namespace pe
