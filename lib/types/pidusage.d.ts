/** The part of pidusage (no bundled types) that `ibas -s status` uses. */
declare module 'pidusage' {
  interface Stat {
    /** percent of one CPU since the last call for this pid (or since the process started) */
    cpu: number;
    /** resident set size, bytes */
    memory: number;
    ppid: number;
    pid: number;
    ctime: number;
    elapsed: number;
    timestamp: number;
  }
  function pidusage(pids: number[]): Promise<Record<string, Stat>>;
  function pidusage(pid: number): Promise<Stat>;
  namespace pidusage {
    function clear(): void;
  }
  export default pidusage;
}
