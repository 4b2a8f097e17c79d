"""An MLP on MNIST with PyTorch Lightning; arguments are layered program / model / trainer."""
from argparse import ArgumentParser

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, random_split
from torchvision import transforms
from torchvision.datasets import MNIST


class LitClassifier(pl.LightningModule):
    def __init__(self, hidden_dim=128, num_layers=2, learning_rate=1e-3, weight_decay=0.0, dropout=0.1):
        super().__init__()
        self.save_hyperparameters()
        layers, width = [], 28 * 28
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_dim
        self.net = nn.Sequential(nn.Flatten(), *layers, nn.Linear(width, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate,
                                 weight_decay=self.hparams.weight_decay)

    @staticmethod
    def add_model_specific_args(parent_parser):
        parser = parent_parser.add_argument_group("LitClassifier")
        parser.add_argument("--hidden_dim", type=int, default=128)
        parser.add_argument("--num_layers", type=int, default=2)
        parser.add_argument("--learning_rate", type=float, default=1e-3)
        parser.add_argument("--weight_decay", type=float, default=0.0)
        parser.add_argument("--dropout", type=float, default=0.1)
        return parent_parser


def main():
    parser = ArgumentParser()
    # program arguments
    parser.add_argument("--data_dir", type=str, default="./data")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_workers", type=int, default=2)
    # model arguments
    parser = LitClassifier.add_model_specific_args(parser)
    # trainer arguments
    parser.add_argument("--accelerator", type=str, default="auto")
    parser.add_argument("--devices", default="auto")
    parser.add_argument("--max_epochs", type=int, default=5)
    args = parser.parse_args()

    pl.seed_everything(42)
    dataset = MNIST(args.data_dir, train=True, download=True, transform=transforms.ToTensor())
    train_set, val_set = random_split(dataset, [55000, 5000])
    train_loader = DataLoader(train_set, batch_size=args.batch_size, num_workers=args.num_workers, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=256, num_workers=args.num_workers)

    model = LitClassifier(args.hidden_dim, args.num_layers, args.learning_rate, args.weight_decay, args.dropout)
    trainer = pl.Trainer(accelerator=args.accelerator, devices=args.devices, max_epochs=args.max_epochs)
    trainer.fit(model, train_loader, val_loader)
    print(f"val_acc={trainer.callback_metrics['val_acc']:.4f}")


if __name__ == "__main__":
    main()
