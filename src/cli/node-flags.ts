// The Node/V8 flags veer's process runs with, wherever it is started: the image (NODE_OPTIONS), the npm
// scripts and the bench. tests/unit/node-flags.test.ts checks that those places agree with this list.

/**
 * A young generation of up to 2 × 32 MiB semi-spaces. A proxy allocates a few KiB per request that die
 * within it, plus the state of every open stream; with V8's default cap on this kind of machine (16 MiB)
 * scavenges come often enough to take ~15 % of veer's CPU at saturation. Measured in bench/ (throughput,
 * A/B of two veers in the same run): 91 → 71 µs of CPU per proxied request; 64 MiB gained nothing more.
 * The cost is memory that a busy process uses anyway: up to 64 MiB more young generation.
 */
export const VEER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
