/**
 * A software rasteriser posing as a WebGPU adapter (Mesa's llvmpipe/lavapipe/softpipe, Google's
 * SwiftShader, Microsoft's WARP / Basic Render Driver): 20–30× slower than wasm, so neither the
 * edge's nor the trainer's `auto` ever picks one. Shared by edge/gpu_probe.ts and
 * trainer/backends/webgpu.ts.
 */
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

export function isSoftwareAdapter(info: AdapterInfoLike): boolean {
  const desc = [info.vendor, info.architecture, info.device, info.description].join(" ");
  return info.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i.test(desc);
}
