/**
 * lz4 bodies for hostile-peer tests (wire form of lib/codec/lz4.ts: uint32 BE declared size + one
 * raw block). The block is one literal 'a', one long match of offset 1, then 5 literal 'a':
 * it expands to exactly `expandsTo` bytes (at least 25) of 'a', whatever size it declares.
 * With `json`, the byte is a space and the last five are `   {}`: valid JSON, mostly whitespace.
 */
export function lz4Bomb(declared: number, expandsTo: number, json = false): Buffer {
  if (expandsTo < 25) throw new Error('an lz4 bomb expands to at least 25 bytes');
  let extra = expandsTo - 25;
  const ext: number[] = [];
  while (extra >= 255) {
    ext.push(255);
    extra -= 255;
  }
  ext.push(extra);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(declared, 0);
  return Buffer.concat([head, Buffer.from([0x1f, json ? 0x20 : 0x61, 1, 0]), Buffer.from(ext), Buffer.from([0x50, ...(json ? [0x20, 0x20, 0x20, 0x7b, 0x7d] : [0x61, 0x61, 0x61, 0x61, 0x61])])]);
}
