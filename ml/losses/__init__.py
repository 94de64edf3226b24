"""Training objectives as small pure tensor functions, one module per method (ALGORITHMS.md §1-6).
Each loss returns `(loss, metrics)`, metrics a dict of detached scalar tensors.

- common: masks, masked means, token_logps / sequence_logps (SUM over response tokens), token_kl
- sft: sft_loss, NLL on a target response (SFT, sequence-level KD)
- kd: kd_loss, token-level forward / reverse KL and generalized JSD (GKD)
- dpo: dpo_loss on sequence log-probs, TRL's metric names
- dckd: dckd_loss and binned_forward_kl (teacher top-K + rest bucket)
- adpa: adpa_loss, adpa_advantages (pi_dpo vs pi_sft, missing-token floor), clip_advantages
- taid: taid_loss and TaidSchedule (adaptive interpolation t)
- redi: redi_loss, reference-free positive/negative traces
- listwise: listwise_loss, ADPO anchored softmax over k candidates
"""
