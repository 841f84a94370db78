// Types for the part of `write-file-atomic` IBP-TS uses (the package ships none).
declare module 'write-file-atomic' {
  interface Options { mode?: number; fsync?: boolean; encoding?: BufferEncoding; chown?: { uid: number; gid: number } | false }
  function writeFileAtomic(file: string, data: string | Buffer, options?: Options): Promise<void>;
  namespace writeFileAtomic {
    function sync(file: string, data: string | Buffer, options?: Options): void;
  }
  export default writeFileAtomic;
}
