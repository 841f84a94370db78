/** File names of an ibms home (no imports: the CLI reads these before anything heavy is loaded). */

/** The daemon's own config, in etc/. */
export const IBMS_CONF = 'ibms.conf';
/** The monitor's pid file, in run/. */
export const PID_FILE = 'ibms.pid';
