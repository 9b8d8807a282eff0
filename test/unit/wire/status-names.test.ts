/** The protocol's status enums read as words, for every value the proto defines and for a newer peer's. */
import { describe, expect, it } from "vitest";
import {
  ConnectionSettingsStatuses,
  PackageStatusEnum,
  RemoteConfigStatuses,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { connectionSettingsStatusName, packageStatusName, remoteConfigStatusName } from "../../../src/wire/index.js";

describe("status names", () => {
  it("names every remote config status", () => {
    expect(remoteConfigStatusName(RemoteConfigStatuses.RemoteConfigStatuses_UNSET)).toBe("unset");
    expect(remoteConfigStatusName(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED)).toBe("applied");
    expect(remoteConfigStatusName(RemoteConfigStatuses.RemoteConfigStatuses_APPLYING)).toBe("applying");
    expect(remoteConfigStatusName(RemoteConfigStatuses.RemoteConfigStatuses_FAILED)).toBe("failed");
  });

  it("names every connection settings status", () => {
    expect(connectionSettingsStatusName(ConnectionSettingsStatuses.ConnectionSettingsStatuses_UNSET)).toBe("unset");
    expect(connectionSettingsStatusName(ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED)).toBe("applied");
    expect(connectionSettingsStatusName(ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLYING)).toBe(
      "applying",
    );
    expect(connectionSettingsStatusName(ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED)).toBe("failed");
  });

  it("names every package status", () => {
    expect(packageStatusName(PackageStatusEnum.PackageStatusEnum_Installed)).toBe("installed");
    expect(packageStatusName(PackageStatusEnum.PackageStatusEnum_InstallPending)).toBe("install_pending");
    expect(packageStatusName(PackageStatusEnum.PackageStatusEnum_Installing)).toBe("installing");
    expect(packageStatusName(PackageStatusEnum.PackageStatusEnum_InstallFailed)).toBe("install_failed");
    expect(packageStatusName(PackageStatusEnum.PackageStatusEnum_Downloading)).toBe("downloading");
  });

  it("reads a value a newer peer may send as the neutral name instead of throwing", () => {
    expect(remoteConfigStatusName(9 as RemoteConfigStatuses)).toBe("unset");
    expect(connectionSettingsStatusName(-1 as ConnectionSettingsStatuses)).toBe("unset");
    expect(packageStatusName(42 as PackageStatusEnum)).toBe("install_pending");
  });
});
