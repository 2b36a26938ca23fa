"""LightningDataModules: MNIST family, offline sample, your own image folders, on-device batches."""

from linzoo.data.device_batches import DeviceBatches
from linzoo.data.image_folder import ImageFolderDataModule
from linzoo.data.mnist import MNISTDataModule
from linzoo.data.sources import DATASETS, SampleFallbackWarning
from linzoo.data.splits import random_split_indices, stratified_split_indices
from linzoo.data.tensor_dataset import ImageTensorDataset, collate_image_batch, to_float_images
from linzoo.data.torchvision_files import resolve_root

__all__ = [
    "DATASETS",
    "DeviceBatches",
    "ImageFolderDataModule",
    "ImageTensorDataset",
    "MNISTDataModule",
    "SampleFallbackWarning",
    "collate_image_batch",
    "random_split_indices",
    "resolve_root",
    "stratified_split_indices",
    "to_float_images",
]
