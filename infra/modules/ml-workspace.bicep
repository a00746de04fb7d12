// A new Azure ML workspace with what it requires: its own storage account (job outputs, model artifacts,
// system datastores), key vault and container registry; it shares the app's Application Insights. Only deployed when no
// existing workspace is named (mlWorkspaceName empty in main.bicep).
param name string
param location string
param tags object = {}
param storageAccountName string
param keyVaultName string
@minLength(5)
@maxLength(50)
@description('Container registry name: 5-50 letters and digits, globally unique.')
param containerRegistryName string
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

// MLflow models deployed without a scoring script (what the app deploys) get an image built by Azure ML on
// first deployment, into the workspace's registry: without one, Azure ML creates one on that first
// deployment, outside this template (so `azd down` would leave it behind). Basic is enough for a few images;
// the admin user stays off: the workspace identity pulls and pushes with Entra ID.
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: containerRegistryName
  location: location
  tags: tags
  sku: {
    //checkov:skip=CKV_AZURE_163: image vulnerability scanning is Defender for Containers, a paid plan chosen per subscription; the images are Azure ML's curated inference images
    //checkov:skip=CKV_AZURE_164: content trust (signed images) needs Premium; Azure ML builds and pulls its own images
    //checkov:skip=CKV_AZURE_165: geo-replication needs Premium; a lost image is rebuilt by Azure ML on the next deployment
    //checkov:skip=CKV_AZURE_166: quarantine needs Premium and a scanner that releases images; Azure ML would wait on it forever
    //checkov:skip=CKV_AZURE_167: untagged-manifest retention needs Premium; Azure ML tags what it builds
    //checkov:skip=CKV_AZURE_233: zone redundancy needs Premium; rebuilding an image is the fallback
    //checkov:skip=CKV_AZURE_237: dedicated data endpoints need Premium and matter only behind a firewall
    name: 'Basic'
  }
  properties: {
    //checkov:skip=CKV_AZURE_139: Azure ML builds images with its serverless image-build compute and managed endpoints pull over the public endpoint unless the workspace uses a managed VNet (see CKV_AZURE_144)
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
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
    containerRegistry: registry.id
    applicationInsights: appInsightsId
    publicNetworkAccess: 'Enabled'
    v1LegacyMode: false
  }
}

output name string = workspace.name
output id string = workspace.id
output containerRegistryName string = registry.name
