// Event Grid subscriptions that deliver to the deployed functions. Deployed by postdeploy.sh after
// `azd deploy`, because the webhook URLs carry the Functions system keys (blobs_extension,
// eventgrid_extension), which exist only once the host has started with the code. The keys are read here
// with listKeys() at deployment time: they never pass through the shell, parameters or outputs.
// Idempotent: re-running updates the subscriptions in place.
param functionAppName string
param storageAccountName string
param storageSystemTopicName string
param trainingContainerName string
param deadLetterContainerName string
param mlResourceGroupName string
param mlSystemTopicName string
@description('Deliveries Event Grid attempts before dead-lettering an event.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30
@description('Minutes Event Grid keeps retrying an event (1440 = 24 h, the maximum).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource functionHost 'Microsoft.Web/sites/host@2024-04-01' existing = {
  parent: site
  name: 'default'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource storageTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: storageSystemTopicName
}

var hostUrl = 'https://${site.properties.defaultHostName}'

// BlobCreated under training/incoming/, only .jsonl and .jsonl.gz, one event per delivery so one slow
// file never holds back another. The blob trigger's webhook answers the validation handshake itself.
resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: storageTopic
  name: 'ingest-blob'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: '${hostUrl}/runtime/webhooks/blobs?functionName=Host.Functions.ingest_blob&code=${functionHost.listKeys().systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${trainingContainerName}/blobs/incoming/'
      advancedFilters: [
        {
          operatorType: 'StringEndsWith'
          key: 'subject'
          values: [
            '.jsonl'
            '.jsonl.gz'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

module mlJobEvents 'eventgrid-ml.bicep' = {
  name: 'eventgrid-ml-job-events'
  scope: resourceGroup(mlResourceGroupName)
  params: {
    systemTopicName: mlSystemTopicName
    endpointUrl: '${hostUrl}/runtime/webhooks/eventgrid?functionName=on_ml_job_event&code=${functionHost.listKeys().systemKeys.eventgrid_extension}'
    deadLetterStorageAccountId: storage.id
    deadLetterContainerName: deadLetterContainerName
    maxDeliveryAttempts: maxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
  }
}
