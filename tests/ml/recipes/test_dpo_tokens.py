"""DPO trains on ml.chat's tokens (issue 10 A.3): the rows handed to TRL are the prompt ids and the
end-of-turn-closed response ids that generation and every other recipe use, chat prompts included,
and the trainer keeps them as they are instead of re-tokenizing text with eos appended."""
from ml.chat import prompt_ids, response_ids
from ml.config import DPOConfig
from ml.data import PreferencePair
from ml.modeling import load_model
from ml.recipes.dpo import chat_tokenized_trainer, dpo_dataset, trl_config

PAIRS = [PreferencePair("What is 2 plus 3?", "5", "6"),
         PreferencePair([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sort: b a"}], "a b", "b a")]


def test_dpo_rows_are_ml_chat_ids_and_the_trainer_keeps_them(tiny_student_dir, tmp_path):
    loaded = load_model(str(tiny_student_dir), device="cpu", trainable=True)
    tokenizer = loaded.tokenizer
    rows = dpo_dataset(tokenizer, PAIRS).to_list()
    for row, pair in zip(rows, PAIRS):
        assert row == {"prompt_ids": prompt_ids(tokenizer, pair.prompt), "chosen_ids": response_ids(tokenizer, pair.chosen),
                       "rejected_ids": response_ids(tokenizer, pair.rejected)}
    config = DPOConfig(batch_size=2, grad_accum=1, max_length=64, max_steps=1, warmup_ratio=0.0, lr_scheduler="constant")
    trainer = chat_tokenized_trainer()(model=loaded.model, args=trl_config(config, tmp_path, len(PAIRS)),
                                       train_dataset=dpo_dataset(tokenizer, PAIRS), processing_class=tokenizer)
    assert trainer.train_dataset.to_list()[1]["chosen_ids"] == response_ids(tokenizer, "a b")
    assert [r["prompt_ids"] for r in trainer.train_dataset.to_list()] == [r["prompt_ids"] for r in rows]
