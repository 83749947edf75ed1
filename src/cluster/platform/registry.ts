// The platforms a scale group may name, each with the check of its config
// section and how it is built. Modules are imported only when a platform is
// built, so a cluster without GCP groups never loads Google's libraries.
import { checkDockerSettings, type DockerSettings } from "./docker/settings.js";
import { checkGcpSettings, type GcpSettings } from "./gcp/settings.js";
import { checkLocalSettings, type LocalSettings } from "./local/settings.js";
import { checkSshSettings, type SshSettings } from "./ssh/settings.js";
import type { Platform, PlatformContext } from "./types.js";

/** The platforms a scale group may name. */
export const PLATFORMS = ["local", "docker", "ssh", "gcp"] as const;
export type PlatformName = (typeof PLATFORMS)[number];

/** One platform's settings (its `platforms.<name>` section), as its `checkSettings` returned them. */
export type PlatformSettings = object;

/** How one platform's settings are checked and the platform built. */
export interface PlatformModule {
  /**
   * Checks the platform's section of the config file (`{}` when it has
   * none) and fills in defaults; throws a ValidationError naming the key
   * under `field` (`platforms.ssh.hosts[1].user`).
   */
  checkSettings(section: Readonly<Record<string, unknown>>, field: string): PlatformSettings;
  /** Builds the platform from checked settings. */
  create(settings: PlatformSettings, context: PlatformContext): Promise<Platform>;
}

export const PLATFORM_MODULES: Record<PlatformName, PlatformModule> = {
  local: {
    checkSettings: checkLocalSettings,
    create: async (settings, context) => (await import("./local/platform.js")).createLocalPlatform(settings as LocalSettings, context),
  },
  docker: {
    checkSettings: checkDockerSettings,
    create: async (settings, context) => (await import("./docker/platform.js")).createDockerPlatform(settings as DockerSettings, context),
  },
  ssh: {
    checkSettings: checkSshSettings,
    create: async (settings, context) => (await import("./ssh/platform.js")).createSshPlatform(settings as SshSettings, context),
  },
  gcp: {
    checkSettings: checkGcpSettings,
    create: async (settings, context) => (await import("./gcp/platform.js")).createGcpPlatform(settings as GcpSettings, context),
  },
};

/** Builds the named platform from its checked settings. */
export function createPlatform(name: PlatformName, settings: PlatformSettings, context: PlatformContext): Promise<Platform> {
  return PLATFORM_MODULES[name].create(settings, context);
}
