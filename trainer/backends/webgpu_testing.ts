/**
 * For WebGPU tests: whether this machine has a WebGPU adapter (Mesa's lavapipe counts: install
 * `mesa-vulkan-drivers`). Tests are skipped, with the reason printed once per file, where it has
 * none (the fresh-machine rule).
 */
import { probeAdapter } from "./webgpu.ts";

/** null when WebGPU can run here, else why not (already printed as "<file> skipped: …"). */
export async function webgpuSkipReason(file: string): Promise<string | null> {
  const p = await probeAdapter();
  if (p.ok) {
    console.log(`${file}: WebGPU adapter "${p.description}"${p.software ? " (software)" : ""}`);
    return null;
  }
  console.log(`${file} skipped: ${p.reason}`);
  return p.reason;
}
