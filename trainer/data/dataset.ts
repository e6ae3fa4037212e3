/** What every loader of the data wing returns: images in [−1, 1], NHWC, with labels and a split. */

export interface Dataset {
  /** "mnist", "fashion" or the folder path given. */
  name: string;
  /** count × imageSize × imageSize × channels floats in [−1, 1] (NHWC). */
  images: Float32Array;
  /** Class id per image, or null when the data has no classes. */
  labels: Int32Array | null;
  /** Class names (index = class id), or null. */
  labelNames: string[] | null;
  count: number;
  imageSize: number;
  channels: number;
}

export interface DatasetSplit {
  train: Dataset;
  test: Dataset;
}

export interface DataOptions {
  /** Side of the square images to produce (MNIST and Fashion-MNIST are 28 natively). */
  imageSize?: number;
  /** 1 = grayscale, 3 = RGB (PNG folders only; the MNISTs are grayscale). */
  channels?: number;
}

/** Error with a message meant for the person running the trainer (no stack trace needed). */
export class DataError extends Error {
  override name = "DataError";
}
