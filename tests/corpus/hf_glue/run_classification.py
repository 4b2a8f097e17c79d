"""Fine-tune a sequence classifier on a GLUE-style task with the Hugging Face Trainer."""
import logging
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from datasets import load_dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    set_seed,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "Checkpoint to fine-tune, from the Hub or a local folder."},
    )
    classifier_dropout: float = field(default=0.1, metadata={"help": "Dropout before the classification head."})
    pooling: str = field(
        default="cls",
        metadata={"help": "How token states become one vector.", "choices": ["cls", "mean", "max"]},
    )
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where to keep downloaded models."})


@dataclass
class DataTrainingArguments:
    task_name: str = field(default="sst2", metadata={"help": "The GLUE task to train on."})
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the training set (debugging)."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Re-run the preprocessing."})


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    return {"accuracy": float((predictions == labels).mean())}


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", handlers=[logging.StreamHandler(sys.stdout)])
    logger.setLevel(logging.INFO)
    set_seed(training_args.seed)

    raw = load_dataset("glue", data_args.task_name, cache_dir=model_args.cache_dir)
    num_labels = len(raw["train"].features["label"].names)
    config = AutoConfig.from_pretrained(model_args.model_name_or_path, num_labels=num_labels,
                                        classifier_dropout=model_args.classifier_dropout)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, config=config)

    def tokenize(batch):
        return tokenizer(batch["sentence"], truncation=True, max_length=data_args.max_seq_length)

    encoded = raw.map(tokenize, batched=True, load_from_cache_file=not data_args.overwrite_cache)
    train_set = encoded["train"]
    if data_args.max_train_samples is not None:
        train_set = train_set.select(range(data_args.max_train_samples))

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set if training_args.do_train else None,
        eval_dataset=encoded["validation"] if training_args.do_eval else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
    )
    if training_args.do_train:
        result = trainer.train()
        trainer.log_metrics("train", result.metrics)
    if training_args.do_eval:
        logger.info("*** Evaluate ***")
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        print(metrics)


if __name__ == "__main__":
    main()
