"""SmallCNN ported to OneFlow by hand (for `dualtrain port cnn.py:SmallCNN --against ...`)."""

import oneflow as flow
import oneflow.nn as nn


class SmallCNN(nn.Module):
    def __init__(self, in_channels=1, num_classes=4, channels=8, image_size=12, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.dropout = nn.Dropout(dropout)
        side = image_size // 4
        self.classifier = nn.Linear(2 * channels * side * side, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = flow.flatten(x, 1)
        return self.classifier(self.dropout(x))
