// A new Azure ML workspace with what it requires: its own storage account (job outputs, model artifacts,
// system datastores) and key vault; it shares the app's Application Insights. Only deployed when no
// existing workspace is named (mlWorkspaceName empty in main.bicep).
param name string
param location string
param tags object = {}
param storageAccountName string
param keyVaultName string
param appInsightsId string

resource mlStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    //checkov:skip=CKV_AZURE_43: false positive: the check reads the parameter's name (storageAccountName); the value stml<token> is 17 lowercase letters and digits
    //checkov:skip=CKV_AZURE_206: LRS: the workspace store keeps job outputs and registered-model copies that can be regenerated; GRS doubles the cost
    name: 'Standard_LRS'
  }
  properties: {
    //checkov:skip=CKV_AZURE_35: Azure ML compute and studio reach the workspace store over its public endpoint unless the workspace uses a managed VNet
    //checkov:skip=CKV_AZURE_59: same as CKV_AZURE_35
    allowBlobPublicAccess: false
    // Azure ML's system datastores (workspaceblobstore, workspaceartifactstore) authenticate with the
    // account key by default, so key access stays on for the workspace's own store only.
    allowSharedKeyAccess: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
      }
    }
  }
}

// Access policies (not RBAC): Azure ML adds its own policy for the workspace identity when it is created.
resource mlVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    //checkov:skip=CKV_AZURE_109: Azure ML reaches its vault over the public endpoint unless the workspace uses a managed VNet
    //checkov:skip=CKV_AZURE_189: same as CKV_AZURE_109
    //checkov:skip=CKV_AZURE_110: purge protection would block `azd down --purge` and re-provisioning under the same name; the vault holds only secrets Azure ML can recreate
    //checkov:skip=CKV_AZURE_42: 'recoverable' means purge protection here, declined for the reason given for CKV_AZURE_110 (soft delete is on)
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    accessPolicies: []
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    //checkov:skip=CKV_AZURE_243: private endpoints need a VNet (see CKV_AZURE_144)
    //checkov:skip=CKV_AZURE_144: the Function App (no VNet) and Event Grid call the workspace over its public endpoint; access is Entra ID + AzureML RBAC only
    friendlyName: name
    storageAccount: mlStorage.id
    keyVault: mlVault.id
    applicationInsights: appInsightsId
    publicNetworkAccess: 'Enabled'
    v1LegacyMode: false
  }
}

output name string = workspace.name
output id string = workspace.id
