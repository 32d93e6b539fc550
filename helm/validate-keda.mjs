// Validates rendered KEDA objects (JSON files, one object each) with @kubernetes-models/keda:
// node validate-keda.mjs FILE.json...   Exits 1 naming the first object that is invalid.
//
// The models check types, required fields and enums; they accept unknown fields, so this
// script also refuses any field the model's class does not declare at the top of spec.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";

const models = { ScaledObject, TriggerAuthentication };
// The fields of each kind's spec (KEDA v2 API), so a misspelt key cannot pass.
const specFields = {
  ScaledObject: [
    "scaleTargetRef", "pollingInterval", "initialCooldownPeriod", "cooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "advanced", "triggers", "fallback",
  ],
  TriggerAuthentication: [
    "podIdentity", "secretTargetRef", "env", "hashiCorpVault", "azureKeyVault",
    "awsSecretManager", "gcpSecretManager", "configMapTargetRef", "boundServiceAccountToken",
  ],
};

let failed = false;
for (const file of process.argv.slice(2)) {
  const obj = JSON.parse(readFileSync(file, "utf8"));
  const Model = models[obj.kind];
  if (!Model) {
    console.error(`${file}: no model for ${obj.apiVersion} ${obj.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(obj).validate();
    const unknown = Object.keys(obj.spec ?? {}).filter((k) => !specFields[obj.kind].includes(k));
    if (unknown.length > 0) throw new Error(`unknown spec fields: ${unknown.join(", ")}`);
    console.log(`${file}: ${obj.kind} ${obj.metadata.name} valid`);
  } catch (e) {
    console.error(`${file}: ${obj.kind} ${obj.metadata?.name} invalid: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
