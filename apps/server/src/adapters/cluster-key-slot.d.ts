// The hash-slot function ioredis itself routes by (it ships no types).
declare module "cluster-key-slot" {
  /** The Redis Cluster slot (0..16383) of a key or channel, honouring a {hash tag}. */
  export default function calculateSlot(key: string | Buffer): number;
}
