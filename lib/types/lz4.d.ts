// Types for the parts of the `lz4` package IBP-TS uses (the package ships none).
declare module 'lz4' {
  export function encodeBound(size: number): number;
  /** Returns the compressed size, or 0 when the input is incompressible. */
  export function encodeBlock(input: Buffer, output: Buffer, startIdx?: number, endIdx?: number): number;
  /** Returns the decoded size, or a negative offset of the error. */
  export function decodeBlock(input: Buffer, output: Buffer, startIdx?: number, endIdx?: number): number;
  const lz4: { encodeBound: typeof encodeBound; encodeBlock: typeof encodeBlock; decodeBlock: typeof decodeBlock };
  export default lz4;
}
