"""An LSTM classifier over token ids: the last step's output decides."""

from torch import nn


class LSTMClassifier(nn.Module):
    def __init__(
        self, vocab_size=16, embed_dim=16, hidden_size=32, num_layers=1, num_classes=4, dropout=0.1
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        outputs, _ = self.lstm(self.embed(x))
        return self.out(self.dropout(outputs[:, -1]))
