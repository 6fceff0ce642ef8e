// Where the config file is: the one rule the proxy and the operator CLI share, without the schema loader.

export const DEFAULT_CONFIG_PATH = 'config/veer.yaml';

/** `--config PATH`, else VEER_CONFIG, else config/veer.yaml. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.VEER_CONFIG ?? DEFAULT_CONFIG_PATH;
}
