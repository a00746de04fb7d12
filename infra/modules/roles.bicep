// Role assignments in the app's resource group, least privilege, each with the feature that needs it.
// (Roles on the Azure ML workspace live in ml-wiring.bicep, beside the workspace.)
param storageAccountName string
param trainingContainerName string
param deadLetterContainerName string
param appInsightsName string
param keyVaultName string
param gatewayKeysSecretName string
@description('The app identity (user-assigned managed identity of the Function App).')
param appPrincipalId string
@description('The Azure ML workspace system identity: reads prepared data through the identity-based datastore.')
param workspacePrincipalId string
@description('The compute cluster identity (empty when no cluster was created): reads prepared data in jobs.')
param computePrincipalId string = ''
@description('System identities of the Event Grid system topics: they write dead-lettered events.')
param topicPrincipalIds array
@description('Optional: the deploying user: uploads training data (az storage blob upload --auth-mode login) and reads the gateway keys.')
param userPrincipalId string = ''

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource trainingContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: trainingContainerName
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource gatewayKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: gatewayKeysSecretName
}

// Functions host (AzureWebJobsStorage: leases, blob trigger receipts, deployment package) and the app
// (ingest reads incoming/, writes datasets/). Owner rather than Contributor: the Functions host needs it
// for blob-trigger bookkeeping, as in the Functions identity-based connection guidance.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Functions host queues (blob trigger poison handling, timers' internals).
resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The ledger: datasets, runs, models, activity and leases in Azure Table storage.
resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra ID auth (Application Insights has local auth disabled).
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The GATEWAY_API_KEYS Key Vault reference: read this one secret, nothing else in the vault.
resource appSecretUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(gatewayKeysSecret.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: gatewayKeysSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Azure ML reads prepared datasets through the identity-based datastore: the workspace identity (data
// preview, datastore validation) and the compute cluster identity (jobs). Read-only, training container only.
resource workspaceTrainingReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(trainingContainer.id, workspacePrincipalId, roles.storageBlobDataReader)
  scope: trainingContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: workspacePrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource computeTrainingReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(computePrincipalId)) {
  name: guid(trainingContainer.id, computePrincipalId, roles.storageBlobDataReader)
  scope: trainingContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: computePrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Event Grid writes undeliverable events to the dead-letter container with the topic's own identity.
resource topicDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principalId in topicPrincipalIds: {
    name: guid(deadLetterContainer.id, principalId, roles.storageBlobDataContributor)
    scope: deadLetterContainer
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource userTrainingContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(trainingContainer.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: trainingContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: userPrincipalId
  }
}

// The deploying user reads the gateway API keys to hand them to clients (this one secret only).
resource userSecretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(gatewayKeysSecret.id, userPrincipalId, roles.keyVaultSecretsUser)
  scope: gatewayKeysSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: userPrincipalId
  }
}
